"""inference usage: tokens the gateway relayed per project, model and minute

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inference_usage',
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('bucket_start', sa.BigInteger(), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), nullable=False),
    sa.Column('input_cached_tokens', sa.BigInteger(), nullable=False),
    sa.Column('num_model_requests', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ),
    sa.PrimaryKeyConstraint('project_id', 'model', 'bucket_start')
    )
    op.create_index('ix_inference_usage_bucket', 'inference_usage', ['bucket_start'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_inference_usage_bucket', table_name='inference_usage')
    op.drop_table('inference_usage')
