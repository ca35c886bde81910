-- The device whose person made a version (qsync-core's `Record::by`: 32 bytes of its id),
-- or NULL for versions recorded before devices were named. Rivals are records too.
ALTER TABLE records ADD COLUMN made_by BLOB;
ALTER TABLE rivals ADD COLUMN made_by BLOB;
