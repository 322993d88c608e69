-- Delete: one record, whatever its state and fence. $1 id.
DELETE FROM {records} WHERE id = $1
