-- Full mode: replace the bronze table's rows with the staged snapshot in one transaction.
-- Readers keep seeing the previous snapshot until commit: never an empty or partial table.
-- (Delete + insert rather than drop + rename, so silver views that depend on the table stay.)
delete from {bronze};
insert into {bronze} ({columns}, _cursor)
select {columns}, _cursor
from {stage}
