# Developer targets. CI runs `make sanitize` (see benchmarks/README.md, "Tokenizer").

PYTHON ?= python
NATIVE_TESTS := tests/test_tokenizer.py tests/test_tokenizer_native.py tests/test_decode_attention.py tests/test_decode_step.py \
	tests/test_corpus_formats.py::test_cpp_jsonl_line_decides_only_what_json_decides_the_same \
	tests/test_corpus_formats.py::test_cpp_jsonl_line_takes_the_records_people_write_and_leaves_the_rest \
	tests/test_corpus_formats.py::test_fast_jsonl_route_counts_what_the_python_reader_counts

.PHONY: sanitize

# Build tinyllm._bpe and tinyllm._ops with AddressSanitizer + UndefinedBehaviorSanitizer into a temp
# dir (the in-place build is left alone), then run the tokenizer, decode-attention and decode-step tests against them.
# Python itself is not instrumented, so libasan is preloaded (with libstdc++, or
# ASan cannot intercept C++ throws from the extension); leak checking is off
# because the interpreter deliberately leaks at exit. Any ASan or UBSan report fails
# the run (halt_on_error), and so does a build that silently fell back to Python
# (TINYLLM_REQUIRE_NATIVE=1).
sanitize:
	@set -e; \
	dir=$$(mktemp -d /tmp/tinyllm-sanitize.XXXXXX); \
	trap 'rm -rf "$$dir"' EXIT; \
	echo "== building tinyllm._bpe and tinyllm._ops with -fsanitize=address,undefined in $$dir"; \
	TINYLLM_SANITIZE=1 TINYLLM_REQUIRE_NATIVE=1 $(PYTHON) setup.py -q build_ext \
		--build-lib "$$dir/lib" --build-temp "$$dir/obj" >"$$dir/build.log" 2>&1 \
		|| { cat "$$dir/build.log"; exit 1; }; \
	mkdir -p "$$dir/run"; \
	cp -r tinyllm "$$dir/run/"; \
	rm -f "$$dir"/run/tinyllm/_bpe*.so "$$dir"/run/tinyllm/_ops*.so; \
	cp "$$dir"/lib/tinyllm/_bpe*.so "$$dir"/lib/tinyllm/_ops*.so "$$dir/run/tinyllm/"; \
	for so in "$$dir"/run/tinyllm/_bpe*.so "$$dir"/run/tinyllm/_ops*.so; do \
		nm -D "$$so" | grep -q __asan_init || { echo "error: $$so was built without ASan"; exit 1; }; \
	done; \
	cp -r tests "$$dir/run/"; \
	libasan=$$($${CXX:-g++} -print-file-name=libasan.so); \
	libstdcxx=$$($${CXX:-g++} -print-file-name=libstdc++.so.6); \
	echo "== running the tokenizer, JSON Lines, decode-attention and decode-step tests with LD_PRELOAD=$$libasan"; \
	cd "$$dir/run" && \
	LD_PRELOAD="$$libasan $$libstdcxx" \
	ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:strict_string_checks=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	TINYLLM_REQUIRE_NATIVE=1 \
	$(PYTHON) -m pytest -q -p no:cacheprovider $(NATIVE_TESTS) $(PYTEST_ARGS)
