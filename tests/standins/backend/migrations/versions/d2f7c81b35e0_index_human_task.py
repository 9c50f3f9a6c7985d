"""index human task by process instance

Revision ID: d2f7c81b35e0
Revises: a94d06f3e2b7
Create Date: 2026-02-02 16:20:05.774530

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "d2f7c81b35e0"
down_revision = "a94d06f3e2b7"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("human_task", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_human_task_process_instance_id"), ["process_instance_id"], unique=False)


def downgrade():
    with op.batch_alter_table("human_task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_human_task_process_instance_id"))
