# The grey benchmarks (scripts/bench.d/grey.sh): the policy server against
# Debian's postgrey, driven by a plain-sockets C++ client.
add_executable(bench_policy_client ${CMAKE_CURRENT_LIST_DIR}/policy_load_client.cpp)
target_link_libraries(bench_policy_client PRIVATE Threads::Threads)
