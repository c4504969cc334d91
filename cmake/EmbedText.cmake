# cmake -DIN=file -DOUT=header -P EmbedText.cmake: writes `dog_chat::kPage` holding IN's text.
file(READ ${IN} content)
file(WRITE ${OUT} "#pragma once\n#include <string_view>\nnamespace dog_chat {\ninline constexpr std::string_view kPage = R\"dogpage(${content})dogpage\";\n}\n")
