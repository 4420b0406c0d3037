CREATE TABLE countries (name VARCHAR PRIMARY KEY, iso_code VARCHAR, dafif_code VARCHAR);
CREATE TABLE airlines (airline_id BIGINT PRIMARY KEY, name VARCHAR, alias VARCHAR, iata VARCHAR,
    icao VARCHAR, callsign VARCHAR, country VARCHAR, active VARCHAR);
CREATE TABLE airports (airport_id BIGINT PRIMARY KEY, name VARCHAR, city VARCHAR, country VARCHAR,
    iata VARCHAR, icao VARCHAR, latitude DOUBLE, longitude DOUBLE, altitude BIGINT,
    timezone DOUBLE, dst VARCHAR, tz_db VARCHAR, type VARCHAR, source VARCHAR);
CREATE TABLE routes (airline VARCHAR, airline_id BIGINT, source_airport VARCHAR,
    source_airport_id BIGINT, destination_airport VARCHAR, destination_airport_id BIGINT,
    codeshare VARCHAR, stops BIGINT, equipment VARCHAR);
CREATE TABLE planes (name VARCHAR, iata VARCHAR, icao VARCHAR);
INSERT INTO countries VALUES ('Norway', 'NO', 'NO'), ('Kenya', 'KE', 'KE'), ('Canada', 'CA', 'CA'),
    ('Japan', 'JP', 'JA'), ('Chile', 'CL', 'CI');
INSERT INTO airlines VALUES
    (1, 'Fjord Air', NULL, 'FJ', 'FJA', 'FJORD', 'Norway', 'Y'),
    (2, 'Savanna Wings', NULL, 'SW', 'SVW', 'SAVANNA', 'Kenya', 'Y'),
    (3, 'Maple Express', 'Maple', 'MX', 'MPX', 'MAPLE', 'Canada', 'Y'),
    (4, 'Sakura Link', NULL, 'SK', 'SKL', 'SAKURA', 'Japan', 'N'),
    (5, 'Andes Connect', NULL, 'AC', 'ANC', 'ANDES', 'Chile', 'Y');
INSERT INTO airports VALUES
    (10, 'Oslo Gardermoen', 'Oslo', 'Norway', 'OSL', 'ENGM', 60.19, 11.10, 681, 1, 'E', 'Europe/Oslo', 'airport', 'demo'),
    (11, 'Bergen Flesland', 'Bergen', 'Norway', 'BGO', 'ENBR', 60.29, 5.22, 170, 1, 'E', 'Europe/Oslo', 'airport', 'demo'),
    (20, 'Jomo Kenyatta', 'Nairobi', 'Kenya', 'NBO', 'HKJK', -1.32, 36.93, 5330, 3, 'N', 'Africa/Nairobi', 'airport', 'demo'),
    (30, 'Toronto Pearson', 'Toronto', 'Canada', 'YYZ', 'CYYZ', 43.68, -79.63, 569, -5, 'A', 'America/Toronto', 'airport', 'demo'),
    (31, 'Vancouver International', 'Vancouver', 'Canada', 'YVR', 'CYVR', 49.19, -123.18, 14, -8, 'A', 'America/Vancouver', 'airport', 'demo'),
    (40, 'Narita International', 'Tokyo', 'Japan', 'NRT', 'RJAA', 35.76, 140.39, 141, 9, 'N', 'Asia/Tokyo', 'airport', 'demo'),
    (50, 'Arturo Merino Benitez', 'Santiago', 'Chile', 'SCL', 'SCEL', -33.39, -70.79, 1555, -4, 'S', 'America/Santiago', 'airport', NULL);
INSERT INTO routes VALUES
    ('FJ', 1, 'OSL', 10, 'BGO', 11, NULL, 0, '738'),
    ('FJ', 1, 'BGO', 11, 'OSL', 10, NULL, 0, '738'),
    ('SW', 2, 'NBO', 20, 'OSL', 10, 'Y', 1, '788'),
    ('MX', 3, 'YYZ', 30, 'YVR', 31, NULL, 0, '320 321'),
    ('MX', 3, 'YVR', 31, 'NRT', 40, NULL, 0, '788'),
    ('SK', 4, 'NRT', 40, 'YVR', 31, NULL, 0, '788'),
    ('AC', 5, 'SCL', 50, 'YYZ', 30, NULL, 1, '789');
INSERT INTO planes VALUES ('Boeing 737-800', '738', 'B738'), ('Boeing 787-8', '788', 'B788'),
    ('Airbus A320', '320', 'A320'), ('Airbus A321', '321', 'A321'), ('Boeing 787-9', '789', 'B789');
