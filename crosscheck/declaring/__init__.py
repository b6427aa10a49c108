"""Declaring what is checked: a user's :class:`~crosscheck.declaring.model.Model`, the case
registry (the documents' cases and users' models alike), the problem a framework redoes, and
the general loop's feed (batches, shuffling, noise, carried state)."""
