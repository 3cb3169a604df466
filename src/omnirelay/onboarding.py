"""What every new organization starts with: sandbox connections for each channel, a
balance, and notification settings with a default route (Viber, then SMS)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from omnirelay.billing import service as billing
from omnirelay.connections import service as connections
from omnirelay.messaging import service as messaging


def set_up(session: Session, organization_id: str) -> None:
    connections.provision_sandbox(session, organization_id)
    billing.open_account(session, organization_id)
    messaging.update_settings(
        session, organization_id, {"default_route": [{"channel": "viber"}, {"channel": "sms"}]}
    )
