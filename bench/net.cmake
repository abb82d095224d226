# The net benchmarks (scripts/bench-net): our daemon (servers/, `kamaelia`)
# against a hand-written Asio line server and Redis pub/sub, driven by one
# load client. Plain Asio only: neither program links the Kamaelia core.
add_executable(bench_asio_greeter_peer ${CMAKE_CURRENT_LIST_DIR}/asio_greeter_peer.cpp)
target_link_libraries(bench_asio_greeter_peer PRIVATE kamaelia_asio)
add_executable(bench_net_load_client ${CMAKE_CURRENT_LIST_DIR}/net_load_client.cpp)
target_link_libraries(bench_net_load_client PRIVATE kamaelia_asio)
add_executable(bench_asio_relay_peer ${CMAKE_CURRENT_LIST_DIR}/asio_relay_peer.cpp)
target_link_libraries(bench_asio_relay_peer PRIVATE kamaelia_asio)
