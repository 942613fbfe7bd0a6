"""The ops schema migrations: applied in order, once per version, re-applied when a file changes."""

from __future__ import annotations

import shutil

from medallion import warehouse


def test_migrate_applies_each_file_once_and_again_when_it_changes(dbs, tmp_path):
    for f in sorted(warehouse.MIGRATIONS_DIR.glob("*.sql")):
        shutil.copy(f, tmp_path / f.name)
    names = [f.name for f in sorted(tmp_path.glob("*.sql"))]
    with dbs.wh() as wh:
        assert warehouse.migrate(wh, tmp_path) == names
        assert wh.execute("select to_regclass('ops.table_freshness') is not null").fetchone()[0]
        assert warehouse.migrate(wh, tmp_path) == []  # current: nothing to do

        # a changed file is applied again, with every file after it (later views may depend on it)
        first = tmp_path / names[0]
        first.write_text(first.read_text() + "\ncreate table if not exists ops.probe (x int);\n")
        assert warehouse.migrate(wh, tmp_path) == names
        assert wh.execute("select to_regclass('ops.probe') is not null").fetchone()[0]
        wh.commit()
        assert wh.execute("select count(*) from ops.schema_migrations").fetchone()[0] == len(names)
