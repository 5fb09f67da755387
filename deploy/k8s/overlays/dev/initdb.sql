-- Each service has its own database; neither reads the other's.
CREATE DATABASE job;
CREATE DATABASE campaign;
