"""epp-scraper: llm-d endpoint picker (EPP) ``/metrics``, every naming generation, as one stable shape."""
