"""What a run shows people: figures, metric tables and the static ``report.html``."""
