# The bulletin-board benchmark (scripts/bench-bbs): our daemon's `bbs`
# driven by a load client of its own (plain Asio, no Kamaelia core).
add_executable(bench_bbs_load_client ${CMAKE_CURRENT_LIST_DIR}/bbs_load_client.cpp)
target_link_libraries(bench_bbs_load_client PRIVATE kamaelia_asio)
