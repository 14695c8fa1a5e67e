"""Job bodies shared by spark_jobs/ (spark-submit) and the ``offline-eval`` CLI: config -> read -> compute -> write."""
