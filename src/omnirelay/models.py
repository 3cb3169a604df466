"""Every table of omnirelay, imported so that ``Base.metadata`` is complete."""

from omnirelay.queue import models as queue_models
from omnirelay.ratelimit import models as ratelimit_models
from omnirelay.tenancy import models as tenancy_models
from omnirelay.webhooks import models as webhook_models

__all__ = ["queue_models", "ratelimit_models", "tenancy_models", "webhook_models"]
