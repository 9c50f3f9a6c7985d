"""add human task

Revision ID: a94d06f3e2b7
Revises: 7e1b5a0c4d92
Create Date: 2026-01-20 11:47:31.008114

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "a94d06f3e2b7"
down_revision = "7e1b5a0c4d92"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "human_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process_instance_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["process_instance_id"],
            ["process_instance.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade():
    op.drop_table("human_task")
