# Airflow image with the project installed; Spark jobs run on the cluster of docker-compose.yml.
FROM apache/airflow:3.3.2-python3.11
USER root
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --chown=airflow:root requirements.txt constraints.txt pyproject.toml /opt/offline-eval/
COPY --chown=airflow:root offline_eval /opt/offline-eval/offline_eval
RUN pip install --no-cache-dir -r /opt/offline-eval/requirements.txt -c /opt/offline-eval/constraints.txt \
    "apache-airflow-providers-postgres" psycopg2-binary \
 && pip install --no-cache-dir --no-deps -e /opt/offline-eval
