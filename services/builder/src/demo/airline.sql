-- The built-in demo schema: an airline network in the spirit of OpenFlights, with declared keys.
CREATE TABLE countries (
    country_code VARCHAR PRIMARY KEY,   -- ISO 3166-1 alpha-2
    name         VARCHAR NOT NULL
);

CREATE TABLE airports (
    airport_id   INTEGER PRIMARY KEY,
    name         VARCHAR NOT NULL,
    city         VARCHAR NOT NULL,
    country_code VARCHAR NOT NULL REFERENCES countries (country_code),
    iata         VARCHAR,
    latitude     DOUBLE NOT NULL,
    longitude    DOUBLE NOT NULL,
    altitude     INTEGER,
    timezone     VARCHAR
);

CREATE TABLE airlines (
    airline_id   INTEGER PRIMARY KEY,
    name         VARCHAR NOT NULL,
    iata         VARCHAR,
    callsign     VARCHAR,
    country_code VARCHAR REFERENCES countries (country_code),
    active       BOOLEAN NOT NULL,
    founded_year INTEGER
);

CREATE TABLE planes (
    plane_id INTEGER PRIMARY KEY,
    name     VARCHAR NOT NULL,
    iata     VARCHAR,
    seats    INTEGER NOT NULL
);

CREATE TABLE routes (
    route_id               INTEGER PRIMARY KEY,
    airline_id             INTEGER NOT NULL REFERENCES airlines (airline_id),
    source_airport_id      INTEGER NOT NULL REFERENCES airports (airport_id),
    destination_airport_id INTEGER NOT NULL REFERENCES airports (airport_id),
    plane_id               INTEGER REFERENCES planes (plane_id),
    stops                  INTEGER NOT NULL,
    price                  DECIMAL(8, 2),
    first_flight           DATE
);
