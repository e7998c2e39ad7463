"""tenancy: project display names, service accounts, public ids / names / owners / last use /
expiry of project API keys, expiry of admin keys

Revision ID: 0005
Revises: 0004
"""
import secrets
import string

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_ALPHABET = string.ascii_letters + string.digits


def upgrade() -> None:
    op.create_table('service_accounts',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('deleted_at', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('service_accounts', schema=None) as batch_op:
        batch_op.create_index('ix_service_accounts_project_seq', ['project_id', 'seq'], unique=False)
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('display_name', sa.String(length=256), nullable=True))
    with op.batch_alter_table('admin_api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('name', sa.String(length=256), nullable=False, server_default='Secret key'))
        batch_op.add_column(sa.Column('service_account_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('last_used_at', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('expires_at', sa.BigInteger(), nullable=True))
    conn = op.get_bind()
    for (seq,) in conn.execute(sa.text('SELECT seq FROM api_keys')).fetchall():
        key_id = 'key_' + ''.join(secrets.choice(_ALPHABET) for _ in range(16))
        conn.execute(sa.text('UPDATE api_keys SET id = :id WHERE seq = :seq'), {'id': key_id, 'seq': seq})
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.alter_column('id', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint('uq_api_keys_id', ['id'])
        batch_op.create_foreign_key('fk_api_keys_service_account', 'service_accounts', ['service_account_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_constraint('fk_api_keys_service_account', type_='foreignkey')
        batch_op.drop_constraint('uq_api_keys_id', type_='unique')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('last_used_at')
        batch_op.drop_column('service_account_id')
        batch_op.drop_column('name')
        batch_op.drop_column('id')
    with op.batch_alter_table('admin_api_keys', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('display_name')
    with op.batch_alter_table('service_accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_service_accounts_project_seq')
    op.drop_table('service_accounts')
