# The ova source provider (worker/providers/ova): OVF descriptors of
# tests/fixtures/ova, tar archives and manifests built at test time, the
# allowed roots. Links the task context of the local harness.
if(TARGET ekprov_ova)
  add_executable(test_ova ${CMAKE_CURRENT_LIST_DIR}/test_ova.c)
  target_link_libraries(test_ova PRIVATE ekprov_ova ektestctx ekproto ekcommon ek::cmocka)
  target_compile_definitions(test_ova PRIVATE EK_FIXTURES="${PROJECT_SOURCE_DIR}/tests/fixtures")
  add_test(NAME unit.test_ova COMMAND test_ova)
  set_tests_properties(unit.test_ova PROPERTIES LABELS unit TIMEOUT 60)
endif()
