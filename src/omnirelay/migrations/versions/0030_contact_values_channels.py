"""contact_values.channels: the contact's channel ids as a mask on each value row, in the
typed indexes, kept by triggers (ADR 39)

Revision ID: 0030
Revises: 0029

A filter's "channels has sms" next to a variable's condition was a probe of each
matching contact (1 s of CPU for 500,000 on SQLite; a hash join of the contacts on
PostgreSQL). With the mask in the typed indexes the range tests it in its own entries.
Every insert names the mask (NOT NULL); the database keeps it after that, whatever code
writes: a value moved to another contact (a merge) takes that one's, and a change of a
contact's channel ids rewrites its value rows (triggers). Bits, in this order: phone 1,
vk_id 2, viber_id 4, telegram_id 8, fb_id 16, instagram_id 32, webchat_id 64
(``contacts.models.CHANNEL_BITS``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

_TYPED = ("value_text", "value_num", "value_date")
_COLUMNS = ("phone", "vk_id", "viber_id", "telegram_id", "fb_id", "instagram_id", "webchat_id")


def _mask(row: str) -> str:
    return " + ".join(
        f"(CASE WHEN {row}.{column} IS NULL THEN 0 ELSE {1 << i} END)"
        for i, column in enumerate(_COLUMNS)
    )


_OF_CONTACT = f"SELECT {_mask('c')} FROM contacts AS c WHERE c.id = NEW.contact_id"
_ID_COLUMNS = ", ".join(_COLUMNS)

# Inserts name the mask themselves (NOT NULL: a writer that forgets fails loudly); a
# trigger on insert cost SQLite 2.3 us of CPU a row even when it had nothing to do.
_SQLITE = [
    f"""CREATE TRIGGER contact_values_channels_move AFTER UPDATE OF contact_id ON contact_values
    BEGIN
        UPDATE contact_values SET channels = ({_OF_CONTACT})
        WHERE contact_id = NEW.contact_id AND variable_id = NEW.variable_id;
    END""",
    f"""CREATE TRIGGER contacts_channels AFTER UPDATE OF {_ID_COLUMNS} ON contacts
    WHEN {_mask("OLD")} != {_mask("NEW")} BEGIN
        UPDATE contact_values SET channels = {_mask("NEW")} WHERE contact_id = NEW.id;
    END""",
]
# FOR SHARE: a concurrent change of the contact's ids waits for this transaction, then
# its own trigger sees the moved row.
_POSTGRESQL = [
    f"""CREATE FUNCTION contact_values_channels() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {_OF_CONTACT.replace(" FROM", " INTO NEW.channels FROM", 1)} FOR SHARE;
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER contact_values_channels_move BEFORE UPDATE OF contact_id ON contact_values
    FOR EACH ROW WHEN (OLD.contact_id IS DISTINCT FROM NEW.contact_id)
    EXECUTE FUNCTION contact_values_channels()""",
    f"""CREATE FUNCTION contacts_channels() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE contact_values SET channels = {_mask("NEW")} WHERE contact_id = NEW.id;
        RETURN NULL;
    END $$""",
    f"""CREATE TRIGGER contacts_channels AFTER UPDATE OF {_ID_COLUMNS} ON contacts
    FOR EACH ROW WHEN (({_mask("OLD")}) IS DISTINCT FROM ({_mask("NEW")}))
    EXECUTE FUNCTION contacts_channels()""",
]
_BACKFILL = f"(SELECT {_mask('c')} FROM contacts AS c WHERE c.id = contact_values.contact_id)"


def _rebuild_sqlite(channels: bool) -> None:
    # As in 0017: no other table references contact_values, so a copy under a new name
    # is safe with foreign keys on; SQLite cannot add a NOT NULL column without one.
    op.create_table(
        "contact_values_new",
        sa.Column("contact_id", sa.String(length=24), nullable=False),
        sa.Column("variable_id", sa.String(length=24), nullable=False),
        sa.Column("value_text", sa.Text(), nullable=True),
        sa.Column("value_num", sa.Float(), nullable=True),
        sa.Column("value_date", sa.Date(), nullable=True),
        *([sa.Column("channels", sa.Integer(), nullable=False)] if channels else []),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name="fk_contact_values_contact_id_contacts",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["variable_id"],
            ["contact_variables.id"],
            name="fk_contact_values_variable_id_contact_variables",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", "variable_id", name="pk_contact_values"),
        sqlite_with_rowid=False,
    )
    kept = "contact_id, variable_id, value_text, value_num, value_date"
    if channels:
        op.execute(
            f"INSERT INTO contact_values_new ({kept}, channels)"
            f" SELECT {kept}, {_BACKFILL} FROM contact_values"
        )
    else:
        op.execute(f"INSERT INTO contact_values_new ({kept}) SELECT {kept} FROM contact_values")
    op.execute("DROP TABLE contact_values")
    op.execute("ALTER TABLE contact_values_new RENAME TO contact_values")


def _indexes(with_channels: bool) -> None:
    for column in _TYPED:
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            f"ix_contact_values_variable_id_{column}",
            "contact_values",
            ["variable_id", column, "contact_id", *(["channels"] if with_channels else [])],
            unique=False,
            sqlite_where=where,
            postgresql_where=where,
        )


def _drop_indexes() -> None:
    for column in _TYPED:
        op.drop_index(f"ix_contact_values_variable_id_{column}", table_name="contact_values")


def upgrade() -> None:
    _drop_indexes()
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("contact_values", sa.Column("channels", sa.Integer(), nullable=True))
        op.execute(f"UPDATE contact_values SET channels = {_BACKFILL}")
        op.alter_column("contact_values", "channels", nullable=False)
        statements = _POSTGRESQL
    else:
        _rebuild_sqlite(channels=True)
        statements = _SQLITE
    _indexes(with_channels=True)
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER contacts_channels ON contacts")
        op.execute("DROP TRIGGER contact_values_channels_move ON contact_values")
        op.execute("DROP FUNCTION contacts_channels()")
        op.execute("DROP FUNCTION contact_values_channels()")
        _drop_indexes()
        op.drop_column("contact_values", "channels")
    else:
        op.execute("DROP TRIGGER contacts_channels")
        op.execute("DROP TRIGGER contact_values_channels_move")
        _drop_indexes()
        _rebuild_sqlite(channels=False)
    _indexes(with_channels=False)
