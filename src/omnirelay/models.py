"""Every table of omnirelay, imported so that ``Base.metadata`` is complete."""

from omnirelay.billing import models as billing_models
from omnirelay.blocklist import models as blocklist_models
from omnirelay.callbacks import models as callback_models
from omnirelay.connections import models as connection_models
from omnirelay.contacts import models as contact_models
from omnirelay.deals import models as deal_models
from omnirelay.gateway import models as gateway_models
from omnirelay.idempotency import models as idempotency_models
from omnirelay.media import models as media_models
from omnirelay.messaging import models as messaging_models
from omnirelay.queue import models as queue_models
from omnirelay.ratelimit import models as ratelimit_models
from omnirelay.telegram import models as telegram_models
from omnirelay.templates import models as template_models
from omnirelay.tenancy import models as tenancy_models
from omnirelay.webhooks import models as webhook_models

__all__ = [
    "billing_models",
    "blocklist_models",
    "callback_models",
    "connection_models",
    "contact_models",
    "deal_models",
    "gateway_models",
    "idempotency_models",
    "media_models",
    "messaging_models",
    "queue_models",
    "ratelimit_models",
    "telegram_models",
    "template_models",
    "tenancy_models",
    "webhook_models",
]
