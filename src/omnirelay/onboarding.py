"""What every new organization starts with: sandbox connections for each channel, a
balance, notification settings with a default route (Viber, then SMS), the call-back
API's credentials, the WhatsApp gateway's account token, the default contact variables
and deal attributes."""

from __future__ import annotations

from sqlalchemy.orm import Session

from omnirelay.billing import service as billing
from omnirelay.callbacks import service as callbacks
from omnirelay.connections import service as connections
from omnirelay.contacts import service as contacts
from omnirelay.deals import service as deals
from omnirelay.gateway import service as gateway
from omnirelay.messaging import service as messaging


def set_up(session: Session, organization_id: str) -> dict[str, str]:
    """Returns the credentials made here, to be shown once."""
    connections.provision_sandbox(session, organization_id)
    billing.open_account(session, organization_id)
    messaging.update_settings(
        session, organization_id, {"default_route": [{"channel": "viber"}, {"channel": "sms"}]}
    )
    account_sid, auth_token = callbacks.create_account(session, organization_id)
    gateway_token = gateway.create_account(session, organization_id)
    contacts.create_defaults(session, organization_id)
    deals.create_defaults(session, organization_id)
    return {
        "account_sid": account_sid,
        "auth_token": auth_token,
        "gateway_account_token": gateway_token,
    }
