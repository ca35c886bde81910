-- The peer a record was taken from as is (NULL: a version made here, or merged). That
-- peer has it already: it is never sent back there, and never counted pending for it.
ALTER TABLE records ADD COLUMN origin BLOB;
