CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL);
INSERT INTO users (id, name, score) VALUES (1, 'Ada', 9.5), (2, 'Grace', 8.25);
