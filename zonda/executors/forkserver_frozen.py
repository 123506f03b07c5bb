"""Imported last by Zonda's fork servers: what the preloads built is moved out of the garbage
collector's reach (`gc.freeze`) before the first fork.

A forked worker shares its parent's memory until it writes to it. A full collection writes to the
header of every object it examines, so without the freeze each worker's first full collection
walks the ~100,000 preloaded objects (imports of Zonda, Celery, kombu, SQLAlchemy): each worker
pays that walk, workers forked together pay it together, and each ends up with its own copy of
every page it touched. Frozen objects are never examined, so their pages stay shared. Python's
documented way for processes that fork without exec.
"""

import gc

gc.freeze()
