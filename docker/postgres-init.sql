-- One PostgreSQL server, three databases: Airflow metadata (created by POSTGRES_DB), Hive metastore, MLflow.
CREATE DATABASE metastore OWNER offline_eval;
CREATE DATABASE mlflow OWNER offline_eval;
