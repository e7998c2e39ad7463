"""the project's name on each job (the segment of its model names); failed attempts counted
apart from attempts (a pause/resume starts an attempt but is no failure); when the active
attempt last reported (a trainer that stops reporting is timed out)

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('project_name', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('failed_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('last_report_at', sa.Float(), nullable=True))
    op.execute("UPDATE jobs SET project_name = (SELECT projects.name FROM projects WHERE projects.id = jobs.project_id)")
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.alter_column('project_name', existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('last_report_at')
        batch_op.drop_column('failed_attempts')
        batch_op.drop_column('project_name')
