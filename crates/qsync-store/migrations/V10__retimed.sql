-- A version that only moved a file's modification time keeps the content of an earlier
-- one: that version (postcard of its version vector), or NULL (qsync-core's
-- `Record::retimed`). Rivals are records too.
ALTER TABLE records ADD COLUMN retimed BLOB;
ALTER TABLE rivals ADD COLUMN retimed BLOB;
