"""usage (reserved in the chain; its owner fills it in)

Revision ID: 0007
Revises: 0006
"""


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
