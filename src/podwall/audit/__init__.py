"""Audit: rules over the inventory model, with stable IDs, severities and seed threats.

`engine.audit_inventory()` runs the rules; `engine.run_audit()` also discovers and reads files. Rules live
in `podwall.audit.rules`, one small class each, registered with `@register`.
"""
