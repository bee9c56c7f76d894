# Shortcuts for ./dev, which does the work (and needs nothing but Python 3.11+ and pip).
.PHONY: up test lint fmt protos schema validate install-gpu

up:          ## Redis and all five services, until Ctrl-C
	./dev up
test:        ## lint, type-check, then the test suite
	./dev test
lint:        ## ruff and mypy only
	./dev lint
fmt:         ## format and auto-fix
	./dev fmt
protos:      ## regenerate Python code from protos/
	./dev protos
schema:      ## regenerate npc_personas/persona.schema.json
	./dev schema
validate:    ## check persona files (file:line:column: message)
	./dev validate
install-gpu: ## use the CUDA builds of onnxruntime in .venv
	./dev install-gpu
