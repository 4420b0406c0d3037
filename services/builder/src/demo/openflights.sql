-- The OpenFlights tables typed as the tutorial's pandas load types them: no declared keys,
-- integer ids that may hold NULL become DOUBLE.
CREATE TABLE airports (
    airport_id BIGINT, name VARCHAR, city VARCHAR, country VARCHAR, iata VARCHAR, icao VARCHAR,
    latitude DOUBLE, longitude DOUBLE, altitude BIGINT, timezone DOUBLE, dst VARCHAR,
    tz_db VARCHAR, type VARCHAR, source VARCHAR
);
CREATE TABLE airlines (
    airline_id BIGINT, name VARCHAR, alias VARCHAR, iata VARCHAR, icao VARCHAR,
    callsign VARCHAR, country VARCHAR, active VARCHAR
);
CREATE TABLE routes (
    airline VARCHAR, airline_id DOUBLE, source_airport VARCHAR, source_airport_id DOUBLE,
    destination_airport VARCHAR, destination_airport_id DOUBLE, codeshare VARCHAR,
    stops BIGINT, equipment VARCHAR
);
CREATE TABLE countries (name VARCHAR, iso_code VARCHAR, dafif_code VARCHAR);
CREATE TABLE planes (name VARCHAR, iata VARCHAR, icao VARCHAR);
