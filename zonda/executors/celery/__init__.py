"""The Celery executor: tasks on Celery workers (Redis or RabbitMQ broker), reports on per-scheduler queues.

Modules: `app` (the Celery app from settings), `codec` (JSON framing of the worker protocol),
`routing` (request -> queue), `events` (reply queues and heartbeats), `task` (the Celery task),
`heartbeat` (worker side), `listener` and `tracker` (scheduler side), `executor`, `worker`
(`zonda worker`). Import the module you need; this package imports nothing eagerly.
"""
