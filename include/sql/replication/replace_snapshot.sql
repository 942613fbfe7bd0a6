-- Full mode: replace the bronze table's rows with the staged snapshot in one transaction.
-- Readers keep seeing the previous snapshot until commit: never an empty or partial table.
-- (Delete + insert rather than drop + rename, so silver views that depend on the table stay.)
delete from {bronze};
-- `once`: as in insert_new_versions.sql, one row per (key, _cursor) when the source's key may repeat.
insert into {bronze} ({columns}, _cursor, _batch_id)
select {once} {columns}, _cursor, {batch_id}
from {stage}
