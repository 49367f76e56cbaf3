"""Keeping a deployed model current: re-fine-tune on new data without silent forgetting."""
