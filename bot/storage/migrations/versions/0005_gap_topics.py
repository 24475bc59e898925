"""gap topics: knowledge gaps mined from the logs

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gap_topics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("previous", sa.Integer(), nullable=False),
        sa.Column("message_ids", sa.JSON(), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("examples", sa.JSON(), nullable=False),
        sa.Column("key_phrases", sa.JSON(), nullable=False),
        sa.Column("nearest_intent", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("similarity", sa.Float(), nullable=True),
        sa.Column("novelty", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("intent", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("resolved_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("gap_topics", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gap_topics_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("gap_topics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gap_topics_status"))
    op.drop_table("gap_topics")
