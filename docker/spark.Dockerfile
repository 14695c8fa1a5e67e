# The Spark image of docker-compose.yml: master, worker and the engine (Spark Connect server).
# Executors run the pipeline's profile pass in Python (mapInArrow), so they need the driver's
# Python minor version (3.11), numpy and pyarrow; the engine needs the project (its settings)
# and the PostgreSQL JDBC driver for the metastore. One image keeps all of them in step with
# requirements.txt and constraints.txt (a test checks the pins).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless libpostgresql-jdbc-java procps curl \
 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt constraints.txt pyproject.toml README.md /opt/offline-eval/
COPY offline_eval /opt/offline-eval/offline_eval
COPY conf /opt/offline-eval/conf
RUN pip install --no-cache-dir pyspark==4.3.0 numpy==2.4.6 pyarrow==25.0.1 pandas==2.3.3 -c /opt/offline-eval/constraints.txt \
 && pip install --no-cache-dir -r /opt/offline-eval/requirements.txt -c /opt/offline-eval/constraints.txt \
 && pip install --no-cache-dir --no-deps /opt/offline-eval
ENV SPARK_HOME=/usr/local/lib/python3.11/site-packages/pyspark \
    PYSPARK_PYTHON=/usr/local/bin/python \
    SPARK_CONF_DIR=/opt/offline-eval/conf/spark \
    OFFLINE_EVAL_ROOT=/opt/offline-eval
ENV PATH=$SPARK_HOME/bin:$SPARK_HOME/sbin:$PATH
WORKDIR /opt/offline-eval
