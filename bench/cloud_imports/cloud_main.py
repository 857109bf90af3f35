"""cartcast's functions with the cloud configuration's imports, and none of its network.

In the cloud (CLOUD_SQL_INSTANCE set) cartcast.db imports the Cloud SQL connector on
the first query, inside the cold start. Offline there is no instance to connect
to, so this source imports the same module up front, builds nothing from it (a
Connector would look for credentials), and serves functions/main.py's functions
unchanged, still on the local database. bench/functions.py starts it as
functions-framework's source; the module lands in the same spawn-to-first-answer
window as it would in the cloud, only earlier in it.
"""

import google.cloud.sql.connector  # noqa: F401 (loaded, as cartcast.db loads it)

from main import (  # noqa: F401 (functions-framework finds the target here)
    api,
    drain_caption_jobs,
    generate_caption,
    poll_mentions,
    publish_due_posts,
    rollup_kpis,
    score_sentiment,
)
