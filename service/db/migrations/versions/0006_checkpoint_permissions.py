"""checkpoint permissions: a fine-tuned model shared with another project

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('checkpoint_permissions',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('model_name', sa.String(length=256), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_name'], ['fine_tuned_models.name'], ),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    sa.UniqueConstraint('model_name', 'project_id', name='uq_checkpoint_permissions_model_project')
    )
    op.create_index('ix_checkpoint_permissions_project_id', 'checkpoint_permissions', ['project_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_checkpoint_permissions_project_id', table_name='checkpoint_permissions')
    op.drop_table('checkpoint_permissions')
