"""add process instance

Revision ID: 7e1b5a0c4d92
Revises: 3c8f2d1a9b04
Create Date: 2026-01-12 14:03:10.551902

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "7e1b5a0c4d92"
down_revision = "3c8f2d1a9b04"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "process_instance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process_initiator_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=50), nullable=True),
        sa.ForeignKeyConstraint(
            ["process_initiator_id"],
            ["user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade():
    op.drop_table("process_instance")
