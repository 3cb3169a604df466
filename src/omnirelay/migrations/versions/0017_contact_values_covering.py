"""contact_values: WITHOUT ROWID on SQLite, typed indexes carry the contact id; contact_merges

Revision ID: 0017
Revises: 0015

On SQLite a rowid table with a composite primary key is two b-trees (the rows and the
key's index) and its secondary indexes point at the rowid, so every value a filter's
index range matched cost a lookup of the row to find its contact (ADR 29). WITHOUT ROWID
the rows are the primary key's b-tree (one b-tree less for each value a bulk import
writes) and each typed index holds the contact id. On PostgreSQL the contact id at the
end of each typed index lets a filter's range be an index-only scan.

contact_merges: a merged-away contact's id and the contact it went into (its redirect).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import omnirelay.db

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None

_TYPED = ("value_text", "value_num", "value_date")


def _drop_indexes() -> None:
    for column in _TYPED:
        op.drop_index(f"ix_contact_values_variable_id_{column}", table_name="contact_values")


def _create_indexes(with_contact: bool) -> None:
    for column in _TYPED:
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            f"ix_contact_values_variable_id_{column}",
            "contact_values",
            ["variable_id", column, *(["contact_id"] if with_contact else [])],
            unique=False,
            sqlite_where=where,
            postgresql_where=where,
        )


def _rebuild_sqlite(rowid: bool) -> None:
    # The table is referenced by no other, so a copy under a new name is safe with
    # foreign keys on.
    op.create_table(
        "contact_values_new",
        sa.Column("contact_id", sa.String(length=24), nullable=False),
        sa.Column("variable_id", sa.String(length=24), nullable=False),
        sa.Column("value_text", sa.Text(), nullable=True),
        sa.Column("value_num", sa.Float(), nullable=True),
        sa.Column("value_date", sa.Date(), nullable=True),
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
        sqlite_with_rowid=rowid,
    )
    op.execute("INSERT INTO contact_values_new SELECT * FROM contact_values")
    op.execute("DROP TABLE contact_values")
    op.execute("ALTER TABLE contact_values_new RENAME TO contact_values")


def upgrade() -> None:
    op.create_table(
        "contact_merges",
        sa.Column("deleted_id", sa.String(length=24), nullable=False),
        sa.Column("organization_id", sa.String(length=32), nullable=False),
        sa.Column("preserved_id", sa.String(length=24), nullable=False),
        sa.Column("merged_at", omnirelay.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_contact_merges_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["preserved_id"],
            ["contacts.id"],
            name=op.f("fk_contact_merges_preserved_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("deleted_id", name=op.f("pk_contact_merges")),
    )
    op.create_index(
        op.f("ix_contact_merges_preserved_id"), "contact_merges", ["preserved_id"], unique=False
    )
    _drop_indexes()
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(rowid=False)
    _create_indexes(with_contact=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_contact_merges_preserved_id"), table_name="contact_merges")
    op.drop_table("contact_merges")
    _drop_indexes()
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(rowid=True)
    _create_indexes(with_contact=False)
