# Image for the edge and the workers (docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 UV_SYSTEM_PYTHON=1
WORKDIR /app
RUN pip install --no-cache-dir uv
COPY pyproject.toml README.md ./
COPY analytics analytics
COPY agents agents
COPY tables tables
COPY web web
RUN uv pip install --system --no-cache .
EXPOSE 8000 6066
CMD ["analytics", "edge"]
