"""TEMPORARY during development."""
from monitor.models import DeliveryCounts


def deliver_pending(store, settings): return delivery_counts(store)
def delivery_counts(store):
    c = store.delivery_counts(); return DeliveryCounts(sent=0, failed=0, pending=c["pending"], dead=c["dead"])
def check_targets(settings): return []
