"""uploads and their parts (POST /v1/uploads)

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('uploads',
    sa.Column('seq', _SEQ, autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('filename', sa.String(length=512), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('mime_type', sa.String(length=255), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('file_expires_after_s', sa.BigInteger(), nullable=True),
    sa.Column('completing_at', sa.BigInteger(), nullable=True),
    sa.Column('file_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    op.create_index('ix_uploads_project_seq', 'uploads', ['project_id', 'seq'], unique=False)
    op.create_index('ix_uploads_status_expires', 'uploads', ['status', 'expires_at'], unique=False)
    op.create_table('upload_parts',
    sa.Column('seq', _SEQ, autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('upload_id', sa.String(length=64), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('storage_key', sa.String(length=512), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    op.create_index(op.f('ix_upload_parts_upload_id'), 'upload_parts', ['upload_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_upload_parts_upload_id'), table_name='upload_parts')
    op.drop_table('upload_parts')
    op.drop_index('ix_uploads_status_expires', table_name='uploads')
    op.drop_index('ix_uploads_project_seq', table_name='uploads')
    op.drop_table('uploads')
