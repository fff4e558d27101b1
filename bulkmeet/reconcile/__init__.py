"""Sync: the sheet as the source of truth. Plan what a sync would change (plan.py), carry it
out (execute.py), undo a run (undo.py)."""

from .execute import Phase, execute, run_sync
from .plan import (
    CHANGES,
    DEFAULT_MAX_DELETES,
    UNCERTAIN_CREATE,
    UNDO_CONFIRM_OVER,
    Change,
    Kind,
    Plan,
    check_deletes,
    describe_changes,
    make_plan,
    plan_input,
    plan_with_ledger,
    read_plan,
)
from .undo import UndoItem, UndoPlan, plan_undo, run_undo, undo_out

__all__ = [
    "CHANGES",
    "DEFAULT_MAX_DELETES",
    "UNCERTAIN_CREATE",
    "UNDO_CONFIRM_OVER",
    "Change",
    "Kind",
    "Phase",
    "Plan",
    "UndoItem",
    "UndoPlan",
    "check_deletes",
    "describe_changes",
    "execute",
    "make_plan",
    "plan_input",
    "plan_with_ledger",
    "plan_undo",
    "read_plan",
    "run_sync",
    "run_undo",
    "undo_out",
]
