"""policy version: a counter SQLite's triggers move on every write the policy depends on

Revision ID: 0007_policy_version
Revises: 0006_oauth
Create Date: 2026-12-01 19:00:00

On SQLite, mcpd follows other processes' commits (mcpd.replication.SqliteWatcher), and
``PRAGMA data_version`` moves on *any* commit - every audit record, every token's last use.
The watcher re-read the whole policy each time: under steady calls, once a second (at 100k
lines, half a second of CPU each time). The triggers move ``policy_version.n`` in the same
transaction as any write to what the policy is built from (rules; tokens but their last
use; users' names and disabled flags; projects' names), whichever process makes it, so the
watcher reads one row and re-reads the policy only when it moved. PostgreSQL replicas hear
of policy writes by NOTIFY instead: nothing is created there.
"""

from alembic import op

revision = "0007_policy_version"
down_revision = "0006_oauth"
branch_labels = None
depends_on = None

# table -> the columns whose update moves the counter (None: any column)
WATCHED: dict[str, str | None] = {
    "casbin_rule": None,
    "mcp_tokens": "project_id, token_sha, expires_at, revoked_at, name, created_by",
    "users": "name, disabled",
    "projects": "name",
}
BUMP = "BEGIN UPDATE policy_version SET n = n + 1; END"


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        "CREATE TABLE policy_version (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)"
    )
    op.execute("INSERT INTO policy_version (id, n) VALUES (1, 0)")
    for table, columns in WATCHED.items():
        update = f"UPDATE OF {columns}" if columns else "UPDATE"
        for event, suffix in (("INSERT", "ins"), (update, "upd"), ("DELETE", "del")):
            op.execute(
                f"CREATE TRIGGER policy_version_{table}_{suffix} AFTER {event} ON {table} {BUMP}"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in WATCHED:
        for suffix in ("ins", "upd", "del"):
            op.execute(f"DROP TRIGGER IF EXISTS policy_version_{table}_{suffix}")
    op.execute("DROP TABLE IF EXISTS policy_version")
