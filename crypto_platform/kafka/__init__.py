"""The only package that talks to Kafka: the local broker, topics, producers and consumers."""
