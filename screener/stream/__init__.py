"""The streaming worker: Kafka in and out around the same screening core.

Kafka code lives here and only here; the screening core never knows where a
post came from.
"""
