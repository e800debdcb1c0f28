"""Import every model module so that ``Base.metadata`` knows all tables (for Alembic)."""

from mailsvc import audit  # noqa: F401
from mailsvc.checks import models as checks_models  # noqa: F401
from mailsvc.db import models  # noqa: F401
from mailsvc.db.base import Base
from mailsvc.external import models as external_models  # noqa: F401
from mailsvc.jobs import models as jobs_models  # noqa: F401
from mailsvc.outbound import models as outbound_models  # noqa: F401
from mailsvc.outgoing import models as outgoing_models  # noqa: F401
from mailsvc.quarantine import models as quarantine_models  # noqa: F401
from mailsvc.register import models as register_models  # noqa: F401
from mailsvc.signatures import models as signatures_models  # noqa: F401
from mailsvc.web.workspace import models as workspace_models  # noqa: F401

metadata = Base.metadata
