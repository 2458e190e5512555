-- Migration number: 0002
ALTER TABLE notes ADD COLUMN tag TEXT;
