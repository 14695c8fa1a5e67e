# Airflow image with the project installed. Its tasks are thin clients of the engine (Spark
# Connect): no Java, no Spark here.
FROM apache/airflow:3.3.2-python3.11
USER airflow
COPY --chown=airflow:root requirements.txt constraints.txt pyproject.toml README.md /opt/offline-eval/
COPY --chown=airflow:root offline_eval /opt/offline-eval/offline_eval
RUN pip install --no-cache-dir -r /opt/offline-eval/requirements.txt -c /opt/offline-eval/constraints.txt \
 && pip install --no-cache-dir --no-deps /opt/offline-eval
