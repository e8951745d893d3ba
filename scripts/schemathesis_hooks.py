"""Schemathesis hooks for scripts/schemathesis.sh.

A webhook target is accepted only when its host resolves to public
addresses or is in `api.webhooks.allowed_hosts`: that depends on DNS and on
the configuration, which no schema can state. Generated targets are
pointed at the address the run allow-lists, so the rest of each generated
watch is what gets tested. The target rules themselves are tested in tests/it/security.rs
(webhook_targets_*).
"""

import schemathesis

ALLOWED_TARGET = "http://127.0.0.1:9/shelfwatch"


@schemathesis.hook
def map_body(context, body):
    if isinstance(body, dict) and isinstance(body.get("webhook_url"), str):
        return {**body, "webhook_url": ALLOWED_TARGET}
    return body
